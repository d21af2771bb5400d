"""Tuning on val within a time budget (``seqlm tune``): the search space and the study."""
