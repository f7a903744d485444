"""`hotspot gateway`: the device gateway (HTTP), alone, for scale-out against a Kafka cluster."""
from __future__ import annotations

import argparse

EXAMPLES = """examples:
  hotspot gateway                                   # on settings.http_host:http_port (default 127.0.0.1:8080)
  hotspot gateway --host 0.0.0.0 --port 8080 --osmand-port 5055
  HOTSPOT_KAFKA_BOOTSTRAP=k1:9092,k2:9092 hotspot gateway
"""


def register(sub) -> None:
    p = sub.add_parser("gateway", help="run the HTTP device gateway",
                       description="Serve /v1/pings, /v1/owntracks and /v1/osmand, publishing pings to Kafka.",
                       epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--host", help="listen address (default: settings.http_host)")
    p.add_argument("--port", type=int, help="listen port (default: settings.http_port)")
    p.add_argument("--osmand-port", type=int, default=None,
                   help="also answer the OsmAnd protocol at / on this port, for unmodified Traccar Clients (e.g. 5055)")
    p.add_argument("--log-level", default="info", choices=("debug", "info", "warning", "error"))
    p.set_defaults(handler=_gateway)


def _gateway(args) -> int:
    import asyncio
    import logging

    import uvicorn

    from gateway.config import GatewayConfig
    from gateway.main import create_app, create_osmand_app
    from streams.cli import CommandError
    from streams.settings import get_settings

    from streams.datadir import private_dir

    settings = get_settings()
    private_dir(settings.data_dir)
    config = GatewayConfig.from_settings(settings)
    if args.osmand_port is not None:
        config = config.with_(osmand_port=args.osmand_port)
    host = args.host or settings.http_host
    port = args.port or settings.http_port
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    from gateway.sessions import SecretKeyError

    try:
        app = create_app(config=config)
    except SecretKeyError as exc:  # outside development, sessions need a real key (issue 14)
        raise CommandError(f"gateway not started: {exc}") from None
    servers = [uvicorn.Server(uvicorn.Config(app, host=host, port=port, loop="uvloop", http="httptools",
                                             log_level=args.log_level, access_log=False))]
    if config.osmand_port and config.osmand_enabled:
        osmand = create_osmand_app(app.state.gateway)
        servers.append(uvicorn.Server(uvicorn.Config(osmand, host=host, port=config.osmand_port, loop="uvloop",
                                                     http="httptools", lifespan="off", log_level=args.log_level,
                                                     access_log=False)))
    print(f"gateway on http://{host}:{port} (Kafka {config.bootstrap_servers}"
          + (f", OsmAnd at http://{host}:{config.osmand_port}/" if config.osmand_port and config.osmand_enabled else "") + ")", flush=True)

    async def serve_main():
        try:
            await servers[0].serve()
        finally:
            for other in servers[1:]:  # the main app ended (or never started): so does the OsmAnd listener
                other.should_exit = True

    async def serve():
        await asyncio.gather(serve_main(), *(s.serve() for s in servers[1:]))

    try:
        import uvloop

        uvloop.run(serve())
    except OSError as exc:
        raise CommandError(f"cannot listen: {exc}") from None
    except SystemExit:  # uvicorn's answer to a failed start-up; say why in one line
        start_error = getattr(app.state, "start_error", None)
        if start_error:
            raise CommandError(f"gateway not started: {start_error}") from None
        raise
    return 0
