"""ENI lifecycle Lambda: gives each new node of one Auto Scaling group one ENI per Multus network.

handler (event + environment) -> planning (pure decisions) -> adapter (EC2 / Auto Scaling calls).
"""
