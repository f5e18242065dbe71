"""OTC market data models (FINRA OTC Transparency); see the OTC issue."""
