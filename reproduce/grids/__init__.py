"""A preset's runs trained by worker processes or submitit jobs, to a time budget whose estimates come from
the records of each kind of device."""
