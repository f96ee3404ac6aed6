"""The outside world behind the domain's ports."""
