"""MineLISA network modules."""
