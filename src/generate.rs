//! Synthetic messy data with ground truth (see issue 2).
