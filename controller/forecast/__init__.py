"""The learned model of one policy: what a retrain buys (quality forecasts), what it costs (energy,
carbon by hour), and which training windows have been tried. Pure: no network I/O, seeds passed in."""
