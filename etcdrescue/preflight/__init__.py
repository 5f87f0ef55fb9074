"""Pre-flight: a read-only survey of every host and the backup (`survey`), and the verdict over it
(`verdict`, pure rules: the same judgement for the CLI's `check`, `recover` and the wizard)."""
