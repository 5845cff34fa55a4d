"""Who may see what: institutions and their credentials, the enterprise's authorizations, its
disputes and statements, and the record of every query.

Pure rules only: the vocabulary (model.py), credentials (tokens.py), and the commands that
change access state with the transitions they are allowed (commands.py). The access log that
orders those commands is a Kafka topic (agents/access.py applies it); what the API reads is
materialized in Redis (state/access.py).
"""
