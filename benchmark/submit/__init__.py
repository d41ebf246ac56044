"""Submissions: `prunebench submit` (a track run for one method and `none`, written as a bundle),
`prunebench verify` (every check of a bundle, with its verdict) and the results store's writes
(`leaderboard --add` of a verified bundle, the project's own published runs).
May import every layer below it: core .. train, records, run, tracks."""
