"""Training loop, schedules, steps-to-loss and BPB metrics, and the train-compare task."""
