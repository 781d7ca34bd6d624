"""The Textual application: screens and widgets over the core."""
