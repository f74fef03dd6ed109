"""The ground floor: clocks, the network and link interfaces, trace events, random.

Everyone may import this package; it imports none of the others.
"""
