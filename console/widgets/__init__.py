"""The console's widgets: header, portfolio bar, pair panes, charts and logs, drawn from the model."""
