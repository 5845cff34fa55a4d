"""Fault scenarios against the real stack (`make faults`): each ends with every product
compared with the reference over the whole log. Too long for `make test`'s 15 minutes."""
