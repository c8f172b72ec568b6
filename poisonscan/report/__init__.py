"""What a scan tells people and tools: ``summary.json`` and ``report.html``."""
