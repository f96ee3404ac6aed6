"""Customer email: templates, the SMTP sender, and local mode's SMTP sink."""
