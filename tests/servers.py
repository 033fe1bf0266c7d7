"""Servers a test starts for itself: a Redis Cluster, a Redis and a MariaDB speaking TLS.

Each runs from the Debian binaries on free local ports, in a temporary directory, and is
stopped by its pid. The shared services (Redis on 6379, MariaDB on 3306) are never touched.
"""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import tempfile
import urllib.parse
from pathlib import Path

import pymysql
import redis
from redis.cluster import ClusterNode, RedisCluster

from tests.processes import free_port, wait_until

#: Seconds a server gets to start (the machine is shared with other test runs).
START_TIMEOUT_S = 60


def _stop(popen: subprocess.Popen | None, timeout: float = 10) -> None:
    if popen is None or popen.poll() is not None:
        return
    popen.terminate()
    try:
        popen.wait(timeout)
    except subprocess.TimeoutExpired:
        popen.kill()
        popen.wait()


def _missing(binary: str) -> str | None:
    return None if shutil.which(binary) or Path(binary).exists() else f"{binary} is not installed"


class LocalRedisCluster:
    """`masters` redis-server processes with cluster mode on, joined by `redis-cli --cluster create`."""

    def __init__(self, root: Path, masters: int = 3, password: str | None = None):
        self.root = root
        self.password = password
        self.ports = [free_port() for _ in range(masters)]
        self.processes: list[subprocess.Popen] = []

    @staticmethod
    def unavailable() -> str | None:
        return _missing("redis-server") or _missing("redis-cli")

    def start(self) -> LocalRedisCluster:
        for port in self.ports:
            self.processes.append(self._server(port))
        for port, process in zip(self.ports, self.processes):
            wait_until(lambda p=port, s=process: self._ping(p) or s.poll() is not None, START_TIMEOUT_S,
                       message=f"redis-server on {port}")
            assert process.poll() is None, (self.root / str(port) / "redis.log").read_text()
        self._create()
        wait_until(self._ready, START_TIMEOUT_S, 0.2, "the cluster to cover every slot")
        return self

    def _server(self, port: int) -> subprocess.Popen:
        workdir = self.root / str(port)
        workdir.mkdir(parents=True)
        # The bus port is port + 10000 unless given: take a free one, since port may be above 55535.
        argv = ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--cluster-enabled", "yes",
                "--cluster-port", str(free_port()),
                "--cluster-config-file", "nodes.conf", "--cluster-node-timeout", "5000", "--dir", str(workdir),
                "--save", "", "--appendonly", "no", "--logfile", str(workdir / "redis.log")]
        if self.password:
            argv += ["--requirepass", self.password, "--masterauth", self.password]
        return subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def _node(self, port: int) -> redis.Redis:
        return redis.Redis(port=port, password=self.password, socket_timeout=5)

    def _ping(self, port: int) -> bool:
        with contextlib.suppress(redis.ConnectionError), self._node(port) as node:
            return node.ping()
        return False

    def _create(self) -> None:
        argv = ["redis-cli", "--cluster", "create", *(f"127.0.0.1:{p}" for p in self.ports),
                "--cluster-replicas", "0", "--cluster-yes"]
        env = {"REDISCLI_AUTH": self.password} if self.password else {}
        done = subprocess.run(argv, capture_output=True, text=True, timeout=START_TIMEOUT_S,
                              env={"PATH": "/usr/bin:/bin", **env})
        assert done.returncode == 0, done.stdout + done.stderr

    def _ready(self) -> bool:
        for port in self.ports:
            with self._node(port) as node:
                info = node.cluster("info")
                if info.get("cluster_state") != "ok" or int(info.get("cluster_known_nodes", 0)) != len(self.ports):
                    return False
        return True

    def url(self, scheme: str = "redis+cluster") -> str:
        """The tracker's URL of this cluster: every master as a startup node."""
        credentials = f":{_quote(self.password)}@" if self.password else ""
        return f"{scheme}://{credentials}" + ",".join(f"127.0.0.1:{p}" for p in self.ports)

    def client(self) -> RedisCluster:
        return RedisCluster(startup_nodes=[ClusterNode("127.0.0.1", p) for p in self.ports], password=self.password)

    def flush(self) -> None:
        for port in self.ports:
            with self._node(port) as node:
                node.flushall()

    def stop(self) -> None:
        for process in self.processes:
            _stop(process)


def _quote(text: str) -> str:
    return urllib.parse.quote(text, safe="")


# -- TLS -------------------------------------------------------------------------------------

class Certificates:
    """A private CA, a server certificate for 127.0.0.1 / localhost, and a client certificate."""

    def __init__(self, root: Path):
        self.root = root
        root.mkdir(parents=True, exist_ok=True)
        self.ca, self.ca_key = root / "ca.pem", root / "ca.key"
        self.server_cert, self.server_key = root / "server.pem", root / "server.key"
        self.client_cert, self.client_key = root / "client.pem", root / "client.key"

    @staticmethod
    def unavailable() -> str | None:
        return _missing("openssl")

    def create(self) -> Certificates:
        self._run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=tracker test CA",
                  "-keyout", self.ca_key, "-out", self.ca)
        self._issue("server", self.server_cert, self.server_key,
                    "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth")
        self._issue("client", self.client_cert, self.client_key, "extendedKeyUsage=clientAuth")
        for key in (self.ca_key, self.server_key, self.client_key):
            key.chmod(0o644)  # the MariaDB test server runs as the mysql user
        return self

    def _issue(self, name: str, cert: Path, key: Path, extensions: str) -> None:
        request, ext = self.root / f"{name}.csr", self.root / f"{name}.ext"
        ext.write_text(extensions + "\n")
        self._run("req", "-newkey", "rsa:2048", "-nodes", "-subj", f"/CN={name}", "-keyout", key, "-out", request)
        self._run("x509", "-req", "-in", request, "-CA", self.ca, "-CAkey", self.ca_key, "-CAcreateserial",
                  "-days", "2", "-extfile", ext, "-out", cert)

    @staticmethod
    def _run(*args) -> None:
        subprocess.run(["openssl", *map(str, args)], check=True, capture_output=True, timeout=60)


class TlsRedis:
    """A redis-server that speaks only TLS, requires a password and a client certificate."""

    def __init__(self, root: Path, certs: Certificates, password: str):
        self.root, self.certs, self.password = root, certs, password
        self.port = free_port()
        self.process: subprocess.Popen | None = None

    def start(self) -> TlsRedis:
        self.root.mkdir(parents=True, exist_ok=True)
        argv = ["redis-server", "--port", "0", "--tls-port", str(self.port), "--bind", "127.0.0.1",
                "--tls-cert-file", str(self.certs.server_cert), "--tls-key-file", str(self.certs.server_key),
                "--tls-ca-cert-file", str(self.certs.ca), "--tls-auth-clients", "yes",
                "--requirepass", self.password, "--dir", str(self.root), "--save", "", "--appendonly", "no",
                "--logfile", str(self.root / "redis.log")]
        self.process = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_until(lambda: self._ping() or self.process.poll() is not None, START_TIMEOUT_S,
                   message="the TLS redis-server")
        assert self.process.poll() is None, (self.root / "redis.log").read_text()
        return self

    def url(self, with_client_cert: bool = True) -> str:
        query = f"ssl_ca_certs={self.certs.ca}&ssl_cert_reqs=required"
        if with_client_cert:
            query += f"&ssl_certfile={self.certs.client_cert}&ssl_keyfile={self.certs.client_key}"
        return f"rediss://:{_quote(self.password)}@127.0.0.1:{self.port}/0?{query}"

    def _ping(self) -> bool:
        with contextlib.suppress(redis.ConnectionError), redis.Redis.from_url(self.url(), socket_timeout=2) as client:
            return client.ping()
        return False

    def stop(self) -> None:
        _stop(self.process)


class TlsMariadb:
    """A mariadbd of its own (datadir in a temp dir) that requires TLS for the user `tracker`."""

    MARIADBD = "/usr/sbin/mariadbd"

    def __init__(self, certs: Certificates, password: str):
        # Not under pytest's temp dir: that is private to root, and mariadbd runs as `mysql`.
        self.root = Path(tempfile.mkdtemp(prefix="tracker-tls-mariadb-"))
        self.certs, self.password = certs, password
        self.port = free_port()
        self.process: subprocess.Popen | None = None

    @staticmethod
    def unavailable() -> str | None:
        return _missing(TlsMariadb.MARIADBD) or _missing("mariadb-install-db")

    def start(self) -> TlsMariadb:
        self.root.chmod(0o755)
        data = self.root / "data"
        data.mkdir()
        for path in (self.certs.ca, self.certs.server_cert, self.certs.server_key):
            shutil.copy(path, self.root / path.name)
        for path in (self.root, data, *self.root.glob("*.pem"), *self.root.glob("*.key")):
            shutil.chown(path, "mysql", "mysql")
        subprocess.run(["mariadb-install-db", "--user=mysql", f"--datadir={data}", "--auth-root-authentication-method=normal",
                        "--skip-test-db"], check=True, capture_output=True, timeout=120)
        socket_path = self.root / "mysqld.sock"
        self.process = subprocess.Popen(
            [self.MARIADBD, "--no-defaults", "--user=mysql", f"--datadir={data}", f"--port={self.port}",
             "--bind-address=127.0.0.1", f"--socket={socket_path}", f"--pid-file={self.root / 'mysqld.pid'}",
             f"--ssl-ca={self.root / self.certs.ca.name}", f"--ssl-cert={self.root / self.certs.server_cert.name}",
             f"--ssl-key={self.root / self.certs.server_key.name}",
             "--skip-log-bin", "--innodb-buffer-pool-size=16M", f"--log-error={self.root / 'error.log'}"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_until(lambda: self._root(socket_path), START_TIMEOUT_S, 0.25, "the TLS mariadbd")
        with self._root(socket_path) as conn, conn.cursor() as cursor:
            cursor.execute("CREATE DATABASE tracker")
            cursor.execute("CREATE USER 'tracker'@'%%' IDENTIFIED BY %s REQUIRE SSL", (self.password,))
            cursor.execute("GRANT ALL ON tracker.* TO 'tracker'@'%'")
        return self

    def _root(self, socket_path: Path):
        try:
            return pymysql.connect(unix_socket=str(socket_path), user="root", autocommit=True)
        except pymysql.err.OperationalError:
            return None

    def url(self, query: str) -> str:
        return f"mysql://tracker:{_quote(self.password)}@127.0.0.1:{self.port}/tracker?{query}"

    def stop(self) -> None:
        _stop(self.process, timeout=30)
        shutil.rmtree(self.root, ignore_errors=True)



class AclRedis:
    """A redis-server whose default user is off and whose `tracker` user has only `rules`."""

    def __init__(self, root: Path, rules: str, password: str):
        self.root, self.rules, self.password = root, rules, password
        self.port = free_port()
        self.process: subprocess.Popen | None = None

    def start(self) -> AclRedis:
        self.root.mkdir(parents=True, exist_ok=True)
        conf = self.root / "redis.conf"
        conf.write_text(f"port {self.port}\nbind 127.0.0.1\nsave \"\"\nappendonly no\ndir {self.root}\n"
                        f"logfile {self.root / 'redis.log'}\nuser default off\n"
                        f"user tracker on >{self.password} {self.rules}\n")
        self.process = subprocess.Popen(["redis-server", str(conf)], stdout=subprocess.DEVNULL,
                                        stderr=subprocess.DEVNULL)
        wait_until(lambda: self._ping() or self.process.poll() is not None, START_TIMEOUT_S,
                   message="the ACL redis-server")
        assert self.process.poll() is None, (self.root / "redis.log").read_text()
        return self

    def url(self) -> str:
        return f"redis://tracker:{_quote(self.password)}@127.0.0.1:{self.port}/0"

    def _ping(self) -> bool:
        with contextlib.suppress(redis.ConnectionError), redis.Redis.from_url(self.url(), socket_timeout=2) as client:
            return client.ping()
        return False

    def stop(self) -> None:
        _stop(self.process)
