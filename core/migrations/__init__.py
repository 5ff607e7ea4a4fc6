"""Numbered catalog migrations: ``NNNN_name.sql`` files applied in order, each in a transaction."""
