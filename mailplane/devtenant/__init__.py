"""The dev tenant: a local emulator of the Microsoft Graph mail endpoints and the Exchange Online admin endpoint.

A development and test tool only. It listens on 127.0.0.1, behaves like the real services as far as mailplane uses
them (shapes, errors, paging, throttling), and no production code path imports it.
"""
