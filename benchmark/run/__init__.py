"""Running a config: parsing and planning, one unit of work, the executors (local, Ray), the weight
guard and method validation. May import every layer below it: core .. train, records."""
