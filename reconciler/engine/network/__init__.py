"""Addresses: the allocation every host computes alike and the DHCP reservations
that deliver it."""
