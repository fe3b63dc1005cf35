"""The health of a tenant's identity graph, computed without holding the graph in memory."""
