"""The update agent: pure decisions (what to trust, what to install) beside the I/O that
fetches from a feed, stages, tells the apps and installs; and the power-cut sweep of an update."""
