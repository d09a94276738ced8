"""ERP bridge: orders and stock from the embedded ERP or a real one behind an adapter."""
