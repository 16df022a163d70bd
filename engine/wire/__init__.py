"""What the engine says on its sockets: topics, framing, commands and the typed schema.

``engine.wire.schema`` owns the message types; ``engine.wire.commands`` the topics, the
msgpack framing and the command/ack exchange. Producer (the engine node), journal read-back
and consumers (the console, the CLI, tests) all use these, never their own dict shapes.
"""
