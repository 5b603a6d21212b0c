"""Multi-task pretraining: synthetic studies and the trainer."""
