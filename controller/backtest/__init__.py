"""`greenops backtest`: replay a real data stream through the controller and the baselines users would pick."""
