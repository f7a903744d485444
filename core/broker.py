"""A local single-node Apache Kafka broker (KRaft), run from Maven-resolved jars.

This owns everything about the embedded broker: resolving the jars once with
Maven (infra/kafka/pom.xml), rendering server.properties, formatting storage
once, starting `kafka.Kafka` with `java` in its own session, deciding it is ready
only when it answers a metadata request, and stopping exactly that process.

A data directory holds one broker: `server.properties`, `cluster.id`,
`broker.pid`, `broker.log` (log4j2) and `broker.out` (JVM stdout/stderr), and
the log segments under `data/`. Two brokers can never share one.

It listens on 127.0.0.1 only. With `HOTSPOT_KAFKA_SECURITY_PROTOCOL=SASL_PLAINTEXT`
its client listener requires SCRAM (SHA-256 or SHA-512) and its controller
listener SASL/PLAIN with a password of its own (`controller.secret`): the
configured user, and an internal one for the broker itself, are created with
Kafka's own storage tool when the data directory is formatted, so a directory
keeps the security it was formatted with (`security`).
"""
from __future__ import annotations

import asyncio
import os
import re
import shutil
import signal
import socket
import subprocess
import time
import uuid
import base64
import secrets
from dataclasses import dataclass
from pathlib import Path
from string import Template

from core.kafka import KafkaSecurity
from core.settings import REPO_ROOT, Settings

INFRA_KAFKA = REPO_ROOT / "infra" / "kafka"
POM = INFRA_KAFKA / "pom.xml"
LOG4J2 = INFRA_KAFKA / "log4j2.xml"
TEMPLATE = INFRA_KAFKA / "server.properties.template"
MIN_JAVA = 17
BROKER_USER = "hotspot-broker"          # the broker's own SCRAM user (inter-broker listener)
CONTROLLER_USER = "hotspot-controller"  # SASL/PLAIN user of the controller listener
SCRAM_MECHANISMS = ("SCRAM-SHA-256", "SCRAM-SHA-512")
_SCRAM_UNSAFE = re.compile(r'[,\[\]="\\\s]')  # would break the storage tool's `name=...,password=...` syntax


class BrokerError(Exception):
    """Something the operator can fix: a missing tool, a busy port, a broker that died."""


class AlreadyRunning(BrokerError):
    pass


def kafka_version() -> str:
    match = re.search(r"<kafka\.version>([^<]+)</kafka\.version>", POM.read_text())
    if not match:
        raise BrokerError(f"{POM} does not set kafka.version")
    return match.group(1).strip()


def find_java() -> str:
    candidates = [os.environ.get("HOTSPOT_JAVA")]
    if os.environ.get("JAVA_HOME"):
        candidates.append(str(Path(os.environ["JAVA_HOME"]) / "bin" / "java"))
    candidates.append(shutil.which("java"))
    for c in candidates:
        if c and Path(c).is_file() and os.access(c, os.X_OK):
            return c
    raise BrokerError(
        f"java not found: install a Java {MIN_JAVA}+ runtime (Debian: apt-get install openjdk-17-jre-headless) or set JAVA_HOME"
    )


def java_major(java: str) -> int:
    out = subprocess.run([java, "-version"], capture_output=True, text=True, timeout=30)
    match = re.search(r'version "(\d+)(?:\.(\d+))?', out.stderr + out.stdout)
    if not match:
        raise BrokerError(f"could not read the version of {java}")
    major = int(match.group(1))
    return int(match.group(2)) if major == 1 and match.group(2) else major


def ensure_jars(jars_root: Path, log=print) -> Path:
    """Resolve the broker's jars with Maven once; return the directory holding them."""
    version = kafka_version()
    target = jars_root / version
    marker = target / ".complete"
    if marker.is_file():
        return target
    mvn = shutil.which("mvn")
    if not mvn:
        raise BrokerError("mvn not found: install Apache Maven (Debian: apt-get install maven) to fetch the Kafka jars")
    staging = jars_root / f".{version}.partial"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    log(f"resolving Apache Kafka {version} jars with Maven into {target} (first use only) ...")
    proc = subprocess.run(
        [mvn, "-q", "-B", "-f", str(POM), "dependency:copy-dependencies",
         f"-DoutputDirectory={staging}", "-DincludeScope=runtime"],
        capture_output=True, text=True,
    )
    if proc.returncode != 0:
        tail = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-15:])
        raise BrokerError(f"Maven could not resolve the Kafka jars:\n{tail}")
    if not any(staging.glob("kafka_2.13-*.jar")):
        raise BrokerError(f"Maven finished but no kafka_2.13 jar is in {staging}")
    (staging / ".complete").write_text(version + "\n")
    shutil.rmtree(target, ignore_errors=True)
    staging.rename(target)
    return target


def _port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _pid_state(pid: int) -> str | None:
    """'running', 'zombie' or None (no such process)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    state = stat.rsplit(")", 1)[1].split()[0]
    return "zombie" if state in ("Z", "X") else "running"


def _reap(pid: int) -> None:
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass  # not our child: init reaps it


@dataclass
class BrokerStatus:
    running: bool
    pid: int | None
    listener: str
    version: str
    data_dir: Path
    topics: dict[str, int] | None = None


class LocalBroker:
    def __init__(self, data_dir: Path, port: int, controller_port: int, heap: str = "512m",
                 jars_root: Path | None = None, partitions: int = 4, security: KafkaSecurity | None = None):
        self.security = security or KafkaSecurity()
        if self.security.protocol not in ("PLAINTEXT", "SASL_PLAINTEXT"):
            raise BrokerError(f"the local broker speaks PLAINTEXT or SASL_PLAINTEXT (loopback only), not "
                              f"{self.security.protocol}: for TLS point HOTSPOT_KAFKA_BOOTSTRAP at your cluster")
        if self.security.sasl and self.security.sasl_mechanism not in SCRAM_MECHANISMS:
            raise BrokerError(f"the local broker authenticates with {' or '.join(SCRAM_MECHANISMS)}, "
                              f"not {self.security.sasl_mechanism}")
        if self.security.sasl and (_SCRAM_UNSAFE.search(self.security.username)
                                   or _SCRAM_UNSAFE.search(self.security.password)):
            raise BrokerError("for the local broker the SASL user name and password may not contain "
                              "spaces or any of , [ ] = \" \\")
        self.dir = Path(data_dir).resolve()
        self.port = port
        self.controller_port = controller_port
        self.heap = heap
        self.jars_root = Path(jars_root) if jars_root else REPO_ROOT / ".cache" / "kafka-jars"
        self.partitions = partitions

    @classmethod
    def from_settings(cls, s: Settings) -> "LocalBroker":
        return cls(s.kafka_data_dir, s.kafka_port, s.kafka_controller_port, s.kafka_heap,
                   s.kafka_jars_dir, s.partitions, KafkaSecurity.from_settings(s))

    # --- paths -----------------------------------------------------------------
    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def pid_file(self) -> Path:
        return self.dir / "broker.pid"

    @property
    def log_file(self) -> Path:
        return self.dir / "broker.log"

    @property
    def out_file(self) -> Path:
        return self.dir / "broker.out"

    @property
    def log_dirs(self) -> Path:
        return self.dir / "data"

    @property
    def properties(self) -> Path:
        return self.dir / "server.properties"

    # --- state -----------------------------------------------------------------
    def pid(self) -> int | None:
        """The pid of this data directory's broker if it is alive, else None."""
        try:
            pid = int(self.pid_file.read_text().strip())
        except (FileNotFoundError, ValueError):
            return None
        if _pid_state(pid) != "running":
            return None
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except FileNotFoundError:
            return None
        # Guard against pid reuse: it must be a Kafka JVM started on our properties.
        if b"kafka.Kafka" not in cmdline or str(self.properties).encode() not in cmdline:
            return None
        return pid

    @property
    def security_file(self) -> Path:
        return self.dir / "security"

    def _secret(self, name: str) -> str:
        """A random password of this data directory, made once (the file is private to the user)."""
        f = self.dir / name
        if not f.is_file():
            fd = os.open(f, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as fh:
                fh.write(secrets.token_urlsafe(24) + "\n")
        return f.read_text().strip()

    def render_properties(self) -> str:
        """The broker's server.properties for this directory's ports and security."""
        sasl = self.security.sasl
        block = ""
        if sasl:
            broker_pw, controller_pw = self._secret("broker.secret"), self._secret("controller.secret")
            scram = 'org.apache.kafka.common.security.scram.ScramLoginModule required username="%s" password="%s";'
            plain = ('org.apache.kafka.common.security.plain.PlainLoginModule required username="%s" password="%s" '
                     'user_%s="%s";')
            block = "\n".join([
                "# SASL: SCRAM for clients, PLAIN with an internal password on the controller listener.",
                "sasl.enabled.mechanisms=" + ",".join(SCRAM_MECHANISMS),
                "sasl.mechanism.inter.broker.protocol=SCRAM-SHA-512",
                *(f"listener.name.sasl_plaintext.{m.lower()}.sasl.jaas.config=" + scram % (BROKER_USER, broker_pw)
                  for m in SCRAM_MECHANISMS),
                "sasl.mechanism.controller.protocol=PLAIN",
                "listener.name.controller.sasl.enabled.mechanisms=PLAIN",
                "listener.name.controller.plain.sasl.jaas.config="
                + plain % (CONTROLLER_USER, controller_pw, CONTROLLER_USER, controller_pw),
            ])
        return Template(TEMPLATE.read_text()).substitute(
            port=self.port, controller_port=self.controller_port,
            log_dirs=self.log_dirs, partitions=self.partitions,
            client_listener=self.security.protocol,
            controller_protocol="SASL_PLAINTEXT" if sasl else "PLAINTEXT",
            sasl=block,
        )

    def _render_properties(self) -> None:
        self.properties.write_text(self.render_properties())

    def _check_formatted_security(self) -> None:
        """A directory keeps the security it was formatted with: its users live in its metadata."""
        if not (self.log_dirs / "meta.properties").is_file():
            return
        formatted = self.security_file.read_text().strip() if self.security_file.is_file() else "PLAINTEXT"
        if formatted != self.security.protocol:
            raise BrokerError(f"the broker data in {self.dir} was formatted for {formatted}, not "
                              f"{self.security.protocol}: stop it and remove {self.dir} to start afresh")

    def _scram_arguments(self) -> list[str]:
        if not self.security.sasl:
            return []
        broker_pw = self._secret("broker.secret")
        args = []
        for m in SCRAM_MECHANISMS:
            args += ["--add-scram", f"{m}=[name={BROKER_USER},password={broker_pw}]",
                     "--add-scram", f"{m}=[name={self.security.username},password={self.security.password}]"]
        return args

    def _format_once(self, java: str, classpath: str) -> None:
        if (self.log_dirs / "meta.properties").is_file():
            return
        id_file = self.dir / "cluster.id"
        if not id_file.is_file():
            # KRaft cluster ids are 16 random bytes in URL-safe base64 without padding.
            id_file.write_text(base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=") + "\n")
        cluster_id = id_file.read_text().strip()
        proc = subprocess.run(
            [java, f"-Dkafka.logs.dir={self.dir}", f"-Dlog4j2.configurationFile={LOG4J2}",
             "-cp", classpath, "kafka.tools.StorageTool", "format",
             # `=` form: a base64 id may begin with "-", which would read as an option.
             f"--cluster-id={cluster_id}", f"--config={self.properties}", "--ignore-formatted",
             *self._scram_arguments()],
            capture_output=True, text=True,
        )
        if proc.returncode != 0:
            raise BrokerError(f"formatting Kafka storage failed: {(proc.stderr or proc.stdout).strip()[-800:]}")
        self.security_file.write_text(self.security.protocol + "\n")

    def start(self, timeout_s: float = 90.0, log=print) -> int:
        """Start the broker; return its pid once it answers a metadata request."""
        if (pid := self.pid()) is not None:
            raise AlreadyRunning(f"a broker is already running on {self.dir} (pid {pid}, {self.bootstrap})")
        java = find_java()
        if (major := java_major(java)) < MIN_JAVA:
            raise BrokerError(f"{java} is Java {major}; Kafka 4 needs Java {MIN_JAVA} or newer")
        for port in (self.port, self.controller_port):
            if not _port_free(port):
                raise BrokerError(f"port {port} on 127.0.0.1 is in use; choose others with --port/--controller-port")
        jars = ensure_jars(self.jars_root, log=log)
        classpath = str(jars / "*")
        from core.datadir import private_dir

        private_dir(self.dir)
        self._check_formatted_security()
        self._render_properties()
        self._format_once(java, classpath)
        cmd = [
            java, f"-Xms{self.heap}", f"-Xmx{self.heap}", "-XX:+UseG1GC", "-XX:MaxGCPauseMillis=20",
            "-Djava.awt.headless=true", f"-Dkafka.logs.dir={self.dir}",
            f"-Dlog4j2.configurationFile={LOG4J2}", "-cp", classpath,
            "kafka.Kafka", str(self.properties),
        ]
        with open(self.out_file, "ab") as out:
            proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                    start_new_session=True, cwd=self.dir)
        self.pid_file.write_text(f"{proc.pid}\n")
        try:
            asyncio.run(self._wait_ready(proc, timeout_s))
        except BaseException:
            self._kill(proc.pid)
            raise
        return proc.pid

    async def _wait_ready(self, proc: subprocess.Popen, timeout_s: float) -> None:
        from core.kafka import wait_for_metadata

        waiter = asyncio.ensure_future(wait_for_metadata(self.bootstrap, timeout_s, self.security))
        try:
            while not waiter.done():
                if proc.poll() is not None:
                    raise BrokerError(f"the broker exited with status {proc.returncode} while starting; "
                                      f"last lines of {self.out_file} and {self.log_file}:\n{self.tail()}")
                await asyncio.wait({waiter}, timeout=0.2)
            waiter.result()
        except TimeoutError as exc:
            raise BrokerError(f"the broker did not become ready: {exc}\n{self.tail()}") from None
        finally:
            waiter.cancel()

    def tail(self, lines: int = 12) -> str:
        chunks = []
        for f in (self.out_file, self.log_file):
            if f.is_file():
                text = f.read_text(errors="replace").strip().splitlines()[-lines:]
                if text:
                    chunks.append(f"--- {f.name}\n" + "\n".join(text))
        return "\n".join(chunks)

    def stop(self, timeout_s: float = 60.0) -> bool:
        """Stop this data directory's broker and wait for it; False if none was running."""
        pid = self.pid()
        if pid is None:
            self.pid_file.unlink(missing_ok=True)
            return False
        os.kill(pid, signal.SIGTERM)  # controlled shutdown: flushes and closes segments
        if not self._wait_gone(pid, timeout_s):
            self._kill(pid)
        self.pid_file.unlink(missing_ok=True)
        return True

    def _kill(self, pid: int) -> None:
        try:
            os.killpg(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self._wait_gone(pid, 10.0)
        self.pid_file.unlink(missing_ok=True)

    @staticmethod
    def _wait_gone(pid: int, timeout_s: float) -> bool:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            _reap(pid)
            if _pid_state(pid) in (None, "zombie"):
                _reap(pid)
                return True
            time.sleep(0.1)  # polling a process's exit; bounded by the deadline
        return False

    def status(self) -> BrokerStatus:
        pid = self.pid()
        topics = None
        if pid is not None:
            from core.kafka import describe_topics

            topics = asyncio.run(describe_topics(self.bootstrap, self.security))
        return BrokerStatus(pid is not None, pid, self.bootstrap, kafka_version(), self.dir, topics)
