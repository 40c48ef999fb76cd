"""Exchange Online administration: the InvokeCommand client, typed objects, and post-apply verification."""
