"""Knobs of the Evolution simulator: keys, QR timing, human contacts, webhook retries and (off by default) chaos."""

from __future__ import annotations

from dataclasses import dataclass, field

import httpx

from mirage.config.outreach import DEFAULT_OPTOUT_KEYWORDS

# Evolution 2.3.6 WEBHOOK_RETRY_NON_RETRYABLE_STATUS_CODES default.
NON_RETRYABLE = frozenset({400, 401, 403, 404, 422})

OPTOUT_REPLIES: tuple[str, ...] = ("SAIR", "Parar", "STOP", "não quero", "Não quero mais receber, obrigado", "parar!")
HUMAN_REPLIES: tuple[str, ...] = (
    "Oi! Tudo bem?",
    "Opa, tudo joia e você?",
    "kkkk verdade",
    "Bom dia! 🙏",
    "Quem é?",
    "Agora não posso falar, depois te respondo",
    "Amém 🙏🙏",
    "Valeu, abraço!",
    "hahaha boa",
    "Sério? Me conta mais",
    "Obrigado pela mensagem 😊",
    "Tô no trabalho, mais tarde falo",
    "Que bom! Fica com Deus",
    "Legal! E aí, como tá a família?",
    "👍",
    "Pode ser, me manda mais detalhes",
    "Nossa, nem vi o tempo passar kkk",
    "Boa noite pra você também!",
)
HUMAN_NAMES: tuple[str, ...] = (
    "Maria Souza",
    "João Pereira",
    "Ana Lima",
    "Carlos Alberto",
    "Fernanda Rocha",
    "Zé da Padaria",
    "Tia Cida",
    "Paulo Henrique",
    "Juliana Alves",
    "Seu Antônio",
)


@dataclass
class ChaosConfig:
    """Faults a real network and a real Evolution produce; every rate is 0 (off) by default."""

    duplicate_rate: float = 0.0  # a webhook is delivered twice
    reorder_rate: float = 0.0  # a webhook is held back up to reorder_max_s so later ones overtake it
    reorder_max_s: float = 2.0
    error_rate: float = 0.0  # a REST call answers 500
    timeout_rate: float = 0.0  # a REST call hangs timeout_s before it answers
    timeout_s: float = 30.0
    fail_next: int = 0  # the next N REST calls answer 500 (deterministic, for tests)
    hang_next: int = 0  # the next N REST calls hang timeout_s first

    @property
    def enabled(self) -> bool:
        rates = (self.duplicate_rate, self.reorder_rate, self.error_rate, self.timeout_rate)
        return any(rates) or self.fail_next > 0 or self.hang_next > 0


@dataclass
class HumanConfig:
    """Simulated people: numbers on WhatsApp that belong to no simulated instance."""

    reply_probability: float = 0.85
    optout_probability: float = 0.05  # a reply is an opt-out word (SAIR, PARAR, STOP, "não quero")
    min_reply_delay_s: float = 8.0  # reading + thinking, before typing time; scaled by time_factor
    max_reply_delay_s: float = 90.0
    typing_chars_per_s: float = 5.0
    lid_probability: float = 0.0  # a contact's chat is addressed as @lid (the phone in remoteJidAlt)
    scripts: dict[str, list[str]] = field(default_factory=dict)  # digits -> replies, in order, then random ones
    replies: tuple[str, ...] = HUMAN_REPLIES
    optout_replies: tuple[str, ...] = OPTOUT_REPLIES
    # What these people mean as opting out: mirage.engine.optout.detect with these as its keywords. A person who
    # opted out stops answering, and `mirage simulate` counts messages after it — even when the tenant's own
    # policy keywords (what the runtime knows) miss the phrase (ADR 0054).
    optout_keywords: tuple[str, ...] = tuple(DEFAULT_OPTOUT_KEYWORDS)
    names: tuple[str, ...] = HUMAN_NAMES


@dataclass
class SimConfig:
    """Everything the simulator can be told; the defaults behave like a stock Evolution 2.3.6."""

    api_key: str = "mirage-sim-global-key"  # AUTHENTICATION_API_KEY
    server_url: str = "http://127.0.0.1:8090"  # SERVER_URL, echoed in every webhook (`server_url`)
    version: str = "2.3.6"
    client_name: str = "evolution_exchange"
    time_factor: float = 1.0  # scales request `delay`s, human replies, acks and webhook retry backoff
    qr_first_delay_s: float = 0.0  # before the first QR; connect answers {"count": 0} until then
    qr_interval_s: float = 45.0  # a new QR (and a qrcode.updated webhook) this often
    qr_limit: int = 30  # QRCODE_LIMIT: then qrcode.updated "limit reached", connection.update refused, close
    refused_hold_s: float = 3.0  # how long connectionState says `refused` before `close`
    scan_after_s: float | None = None  # a QR is "scanned" this long after connect; None: only /sim scan
    phones: dict[str, str] = field(default_factory=dict)  # instance name -> phone that scans it
    expose_token: bool = False  # AUTHENTICATION_EXPOSE_IN_FETCH_INSTANCES: token in each webhook's `apikey`
    cors_origins: tuple[str, ...] = ()  # CORS_ORIGIN; () or ("*",) is Evolution's default (every origin, and none)
    delivery_ack_after_s: float = 1.0  # scaled; sender gets messages.update DELIVERY_ACK
    read_after_s: float | None = 4.0  # scaled; READ unless the receiver marks it read sooner; None: only then
    absent_numbers: frozenset[str] = frozenset()  # digits not on WhatsApp (also: any ending in 7 zeros)
    webhook_max_attempts: int = 10
    webhook_initial_delay_s: float = 5.0  # scaled by time_factor
    webhook_max_delay_s: float = 300.0
    webhook_jitter: float = 0.2
    webhook_timeout_s: float = 30.0
    non_retryable: frozenset[int] = NON_RETRYABLE
    webhook_transport: httpx.AsyncBaseTransport | None = None  # e.g. httpx.ASGITransport(app=mirage_app)
    webhook_url_override: str | None = None  # post every instance's webhooks here instead of its own URL
    human: HumanConfig = field(default_factory=HumanConfig)
    chaos: ChaosConfig = field(default_factory=ChaosConfig)
    seed: int | None = None

    def scaled(self, seconds: float) -> float:
        return max(0.0, seconds * self.time_factor)
