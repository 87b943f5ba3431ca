"""Environments the agent's tools act on (recorded Mind2Web pages, a headless browser, the WebShop shop,
the InterCode-SQL databases, ...).

They are real things a user may run without the agent: nothing here imports lumos.model or lumos.agent.
"""
