"""The one place that makes Kafka clients and knows the topics.

Topic names and their shapes are contracts (DESIGN.md §2). Every data topic is
created up front with the configured partition count, because Faust refuses to
join topics whose partition counts disagree, and the broker is run with
automatic topic creation off so a typo cannot create a stray topic.

Every client (producer, consumer, admin) is made here, so every one carries
the cluster's security settings (`KafkaSecurity`: protocol, SASL mechanism and
credentials, TLS CA / client certificate / key). By default they come from the
process's settings; callers pass only the bootstrap servers and their tuning.
"""
from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from pathlib import Path

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaConnectionError, KafkaError, TopicAlreadyExistsError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TopicSpec:
    name: str
    compacted: bool = False
    retention_ms: int | None = None
    # Topic settings that the system's correctness rests on: applied at creation, and put
    # right on a topic that exists without them (an older data directory, a hand-made topic).
    required: tuple[tuple[str, str], ...] = ()

    def configs(self) -> dict[str, str]:
        config = dict(self.required)
        if self.compacted:
            config["cleanup.policy"] = "compact"
        if self.retention_ms is not None:
            config["retention.ms"] = str(self.retention_ms)
        return config


# The broker stamps every ping with the time it appended it (LogAppendTime): the arrival
# clock that the worker's reorder hold runs on. Append times never decrease along a
# partition, so "every ping that arrived before T has been read" can be known from an
# offset, which the gateway's own stamp (taken before a send that may be slow) cannot give.
# See docs/decisions.md, "An arrival clock that cannot run ahead of the data".
ARRIVAL_CLOCK = (("message.timestamp.type", "LogAppendTime"),)

TOPICS: tuple[TopicSpec, ...] = (
    TopicSpec("pings", required=ARRIVAL_CLOCK),
    TopicSpec("hotspots", compacted=True),
    TopicSpec("patrol-events"),
    TopicSpec("assignments"),
    TopicSpec("activity"),
    TopicSpec("pings-rejected"),
    TopicSpec("allocations", compacted=True),
    TopicSpec("audit"),  # issue 14: who signed in, who viewed locations (gateway.audit)
)


@dataclass(frozen=True, repr=False)
class KafkaSecurity:
    """How clients authenticate to the cluster and protect the connection."""

    protocol: str = "PLAINTEXT"           # PLAINTEXT, SSL, SASL_PLAINTEXT, SASL_SSL
    sasl_mechanism: str = "SCRAM-SHA-512"  # PLAIN, SCRAM-SHA-256, SCRAM-SHA-512
    username: str = ""
    password: str = ""
    cafile: Path | None = None
    certfile: Path | None = None
    keyfile: Path | None = None
    key_password: str = ""

    def __repr__(self) -> str:  # the password must never reach a log line
        return f"KafkaSecurity(protocol={self.protocol}, mechanism={self.sasl_mechanism}, username={self.username!r})"

    @classmethod
    def from_settings(cls, s=None) -> "KafkaSecurity":
        if s is None:
            from streams.settings import get_settings

            s = get_settings()
        return cls(s.kafka_security_protocol, s.kafka_sasl_mechanism, s.kafka_sasl_username,
                   s.kafka_sasl_password.get_secret_value(), s.kafka_ssl_cafile, s.kafka_ssl_certfile,
                   s.kafka_ssl_keyfile, s.kafka_ssl_key_password.get_secret_value())

    @property
    def sasl(self) -> bool:
        return self.protocol.startswith("SASL_")

    @property
    def tls(self) -> bool:
        return self.protocol in ("SSL", "SASL_SSL")

    def ssl_context(self):
        """A verifying TLS context (the system's CAs unless a CA file is given), or None without TLS."""
        if not self.tls:
            return None
        from aiokafka.helpers import create_ssl_context

        return create_ssl_context(
            cafile=str(self.cafile) if self.cafile else None,
            certfile=str(self.certfile) if self.certfile else None,
            keyfile=str(self.keyfile) if self.keyfile else None,
            password=self.key_password or None,
        )

    def client_options(self) -> dict:
        """Keyword arguments every aiokafka client takes."""
        options: dict = {"security_protocol": self.protocol}
        if self.tls:
            options["ssl_context"] = self.ssl_context()
        if self.sasl:
            options.update(sasl_mechanism=self.sasl_mechanism, sasl_plain_username=self.username,
                           sasl_plain_password=self.password)
        return options

    def faust_credentials(self):
        """The same security for a Faust app's `broker_credentials` (None for PLAINTEXT)."""
        import faust

        if self.sasl:
            return faust.SASLCredentials(username=self.username, password=self.password,
                                         mechanism=self.sasl_mechanism, ssl_context=self.ssl_context())
        if self.tls:
            return faust.SSLCredentials(self.ssl_context())
        return None


def _secured(options: dict, security: KafkaSecurity | None) -> dict:
    return {**(security or KafkaSecurity.from_settings()).client_options(), **options}


def make_producer(bootstrap_servers: str, *, security: KafkaSecurity | None = None,
                  **overrides) -> AIOKafkaProducer:
    """Idempotent, acks=all producer: a send that returns was durably written."""
    options = dict(
        bootstrap_servers=bootstrap_servers,
        acks="all",
        enable_idempotence=True,
        linger_ms=5,
        max_batch_size=256 * 1024,
        compression_type=None,
        request_timeout_ms=15000,
    )
    options.update(overrides)
    return AIOKafkaProducer(**_secured(options, security))


def make_consumer(*topics: str, bootstrap_servers: str, security: KafkaSecurity | None = None,
                  **options) -> AIOKafkaConsumer:
    """A consumer with the cluster's security; everything else is the caller's (group, offsets, sizes)."""
    return AIOKafkaConsumer(*topics, **_secured(dict(bootstrap_servers=bootstrap_servers, **options), security))


def make_admin(bootstrap_servers: str, *, security: KafkaSecurity | None = None,
               **overrides) -> AIOKafkaAdminClient:
    options = dict(bootstrap_servers=bootstrap_servers, request_timeout_ms=10000)
    options.update(overrides)
    return AIOKafkaAdminClient(**_secured(options, security))


async def ensure_topics(bootstrap_servers: str, partitions: int, topics=TOPICS,
                        visible_within_s: float = 60.0, security: KafkaSecurity | None = None) -> list[str]:
    """Create missing topics and return the names created; existing ones keep their partitions.

    Returns only once every topic asked for is in the cluster's metadata with its
    partitions (a broker's metadata cache lags a creation by a moment, and a client
    that looks too early finds nothing), and once existing topics carry the settings
    their spec requires (`TopicSpec.required`).
    """
    admin = make_admin(bootstrap_servers, security=security)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        wanted = [NewTopic(spec.name, num_partitions=partitions, replication_factor=1, topic_configs=spec.configs())
                  for spec in topics if spec.name not in existing]
        created: list[str] = []
        if wanted:
            try:
                created = _created_topics(await admin.create_topics(wanted))
            except TopicAlreadyExistsError:
                pass  # another process won the race; the topics are there either way
        await _require_configs(admin, [spec for spec in topics if spec.required and spec.name in existing])
        await _wait_visible(admin, [spec.name for spec in topics], visible_within_s)
        return created
    finally:
        await admin.close()


async def _require_configs(admin: AIOKafkaAdminClient, specs: list[TopicSpec]) -> None:
    """Put the required settings on topics that exist without them, keeping their other overrides."""
    if not specs:
        return
    from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

    described = await admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, s.name) for s in specs])
    current: dict[str, dict[str, tuple[str, bool]]] = {}
    for response in described:
        for resource in response.resources:
            # (error_code, error_message, resource_type, name, [(key, value, read_only, source, sensitive, ...)])
            current[resource[3]] = {entry[0]: (entry[1], type(entry[3]) is int and entry[3] == 1)
                                    for entry in resource[4]}
    changes = []
    for spec in specs:
        have = current.get(spec.name, {})
        if all(have.get(key, (None,))[0] == value for key, value in spec.required):
            continue
        # AlterConfigs replaces a topic's whole set of overrides: carry the present ones over.
        overrides = {key: value for key, (value, is_override) in have.items() if is_override and value is not None}
        overrides.update(spec.required)
        changes.append(ConfigResource(ConfigResourceType.TOPIC, spec.name, configs=overrides))
    if changes:
        for response in await admin.alter_configs(changes):
            failed = [f"{r[3]}: error {r[0]} ({r[1]})" for r in response.resources if r[0] != 0]
            if failed:
                wanted = ", ".join(f"{s.name}: {dict(s.required)}" for s in specs)
                raise KafkaError("could not set required topic settings: " + "; ".join(failed) +
                                 f". Set them on the topic yourself ({wanted}), or let this user alter topic configs")
        log.info("required settings applied to existing topics %s", [c.name for c in changes])


async def _wait_visible(admin: AIOKafkaAdminClient, names: list[str], within_s: float) -> None:
    """Wait until every named topic is in the metadata with a leader for each partition."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within_s
    missing = list(names)
    while True:
        described = await admin.describe_topics(missing)
        missing = [d["topic"] for d in described
                   if d.get("error_code") or not d["partitions"]
                   or any(p.get("leader", -1) < 0 for p in d["partitions"])]
        if not missing:
            return
        if loop.time() > deadline:
            raise KafkaError(f"topics {missing} were not usable within {within_s:.0f}s of being created")
        await asyncio.sleep(0.1)  # metadata propagation: a readiness poll bounded by the deadline


# Kafka error code of a topic that already exists: the broker's metadata cache
# can lag a creation by a moment, so a second caller may ask for it again.
_TOPIC_ALREADY_EXISTS = TopicAlreadyExistsError.errno


def _created_topics(response) -> list[str]:
    """Names the broker created, from a CreateTopics response.

    The broker answers per topic. A topic that already exists is not ours to
    report; any other per-topic error (a bad config, a policy refusal) is raised,
    since carrying on would leave the system without a topic it needs.
    """
    created, failed = [], []
    for entry in response.topic_errors:
        topic, code = entry[0], entry[1]
        message = entry[2] if len(entry) > 2 else None
        if code == 0:
            created.append(topic)
        elif code != _TOPIC_ALREADY_EXISTS:
            failed.append(f"{topic}: error {code}{f' ({message})' if message else ''}")
    if failed:
        raise KafkaError("could not create topics: " + "; ".join(failed))
    return created


async def describe_topics(bootstrap_servers: str, security: KafkaSecurity | None = None) -> dict[str, int]:
    """Topic name -> partition count, internal topics excluded."""
    admin = make_admin(bootstrap_servers, security=security)
    await admin.start()
    try:
        names = [n for n in await admin.list_topics() if not n.startswith("__")]
        if not names:
            return {}
        described = await admin.describe_topics(names)
        return {d["topic"]: len(d["partitions"]) for d in described}
    finally:
        await admin.close()


async def wait_for_metadata(bootstrap_servers: str, timeout_s: float, security: KafkaSecurity | None = None) -> None:
    """Return once the cluster answers a metadata request; raise TimeoutError otherwise."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    # Refused connections are the expected answer while the broker boots; the
    # caller reports the last one if the deadline passes.
    quiet = logging.getLogger("aiokafka")
    saved_level = quiet.level
    quiet.setLevel(logging.CRITICAL)
    try:
        await _poll_metadata(bootstrap_servers, loop, deadline, security)
    finally:
        quiet.setLevel(saved_level)


async def _poll_metadata(bootstrap_servers: str, loop, deadline: float, security: KafkaSecurity | None) -> None:
    last: Exception | None = None
    timeout_s = deadline - loop.time()
    while loop.time() < deadline:
        admin = make_admin(bootstrap_servers, security=security, request_timeout_ms=3000)
        try:
            await asyncio.wait_for(admin.start(), timeout=max(0.5, deadline - loop.time()))
            await asyncio.wait_for(admin.describe_cluster(), timeout=max(0.5, deadline - loop.time()))
            return
        except (KafkaConnectionError, KafkaError, OSError, asyncio.TimeoutError) as exc:
            last = exc
        finally:
            try:
                await admin.close()
            except Exception:  # a half-started client may fail to close; nothing to release
                pass
        await asyncio.sleep(0.25)  # poll interval of a readiness loop bounded by the deadline
    raise TimeoutError(f"no metadata from {bootstrap_servers} within {timeout_s:.0f}s ({last!r})")


async def credentials_refused(bootstrap_servers: str, security: KafkaSecurity | None = None,
                              timeout_s: float = 10.0) -> bool:
    """True when a broker answers but rejects our SASL credentials.

    aiokafka reports a failed bootstrap only as "unable to bootstrap", whatever
    the reason; a direct connection to each bootstrap server tells a refused
    password apart from a broker that is not there, so the CLI can say which.
    """
    from aiokafka.conn import create_conn
    from aiokafka.errors import SaslAuthenticationFailed

    security = security or KafkaSecurity.from_settings()
    if not security.sasl:
        return False
    for server in bootstrap_servers.split(","):
        host, _, port = server.strip().rpartition(":")
        try:
            conn = await asyncio.wait_for(create_conn(host, int(port), **security.client_options()), timeout_s)
        except SaslAuthenticationFailed:
            return True
        except (KafkaError, OSError, ValueError, asyncio.TimeoutError):
            continue
        conn.close()
    return False


async def group_assignment(bootstrap_servers: str, group: str, topic: str,
                           security: KafkaSecurity | None = None) -> dict[str, list[int]]:
    """Member id -> the partitions of `topic` the group coordinator gave it; {} while the group rebalances
    (or is empty). How an operator, a test or a benchmark sees who owns what."""
    from aiokafka.coordinator.protocol import ConsumerProtocolMemberAssignment

    admin = make_admin(bootstrap_servers, security=security)
    await admin.start()
    try:
        [described] = await admin.describe_consumer_groups([group])
        info = described.to_object()["groups"][0]
        if info["state"] != "Stable":
            return {}
        out = {}
        for member in info["members"]:
            assignment = ConsumerProtocolMemberAssignment.decode(member["member_assignment"])
            out[member["member_id"]] = sorted(p for t, parts in assignment.assignment if t == topic for p in parts)
        return out
    finally:
        await admin.close()
