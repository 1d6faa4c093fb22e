-- The task store's database beside Temporal's own (same server, own database).
CREATE DATABASE verifier;
