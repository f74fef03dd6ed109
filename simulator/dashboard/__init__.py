"""The Textual dashboard (top floor): nothing imports it except the CLI."""
