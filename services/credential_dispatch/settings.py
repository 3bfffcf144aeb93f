import ssl
from pathlib import Path
from typing import Literal

from pydantic import Field

from shared import topics
from shared.retry import RetryPolicy
from shared.settings import CommonSettings, own_ops_port


class CredentialDispatchSettings(CommonSettings):
    ops_port: int = own_ops_port(topics.CREDENTIAL_DISPATCH)
    smtp_host: str = "127.0.0.1"
    smtp_port: int = 1025
    smtp_username: str | None = None
    smtp_password: str | None = None
    # starttls: encrypt whenever the server offers STARTTLS (a password is never sent in
    # clear); tls: TLS from the first byte (port 465); none: never encrypt.
    smtp_tls: Literal["starttls", "tls", "none"] = "starttls"
    # Certificates to trust for the SMTP server (PEM), instead of the system's.
    smtp_ca_file: Path | None = None
    smtp_pool_size: int = 4
    smtp_timeout: float = 30.0
    # Messages per second to the SMTP server, all connections together; empty = no cap.
    smtp_rate_per_second: float | None = None
    mail_from: str = "ONE <ne-pas-repondre@one.opendigitaleducation.com>"
    ent_url: str = "https://one.opendigitaleducation.com"
    chromium_path: str = "/usr/bin/chromium"
    ghostscript_path: str = "/usr/bin/gs"  # makes the invoices PDF/A-3 (Factur-X)
    render_concurrency: int = 3
    # Deliveries: claimed in batches under a lease, retried with exponential backoff.
    delivery_batch: int = 16
    delivery_lanes: int = 2
    delivery_poll_seconds: float = 1.0
    # A claim lasts this long unless renewed (every third of it while sending): how soon a
    # crashed worker's deliveries are taken up again.
    delivery_lease_seconds: float = 30.0
    delivery_retry_base_seconds: float = Field(default=2.0, gt=0)
    delivery_retry_max_seconds: float = Field(default=600.0, gt=0)
    delivery_max_attempts: int = Field(default=12, ge=1)
    # Printed documents (they hold activation codes) are deleted after this; a request to
    # send one again then finds no document. The audit of hand-outs holds no code.
    document_retention_days: float = Field(default=30.0, gt=0)
    audit_retention_days: float = Field(default=400.0, gt=0)
    retention_interval_seconds: float = Field(default=3600.0, gt=0)

    @property
    def delivery_retry(self) -> RetryPolicy:
        return RetryPolicy.exponential(
            base=self.delivery_retry_base_seconds,
            ceiling=self.delivery_retry_max_seconds,
            max_attempts=self.delivery_max_attempts,
        )

    def smtp_tls_context(self) -> ssl.SSLContext | None:
        if self.smtp_ca_file is None:
            return None  # aiosmtplib's default: the system's certificates, verified
        return ssl.create_default_context(cafile=str(self.smtp_ca_file))
