"""The headless daemon per book: supervisor, control socket, kill switch (never imports Textual)."""
