"""The console's screens: the main board, a pair's detail, help and the confirm dialog."""
