"""The benchmark harness: workloads, the roofline bound, the baseline, records, the suite."""
