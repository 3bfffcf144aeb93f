from pydantic import BaseModel, Field

from services.order_intake.domain import DEFAULT_ACADEMIES
from shared import topics
from shared.settings import CommonSettings, own_ops_port


class Seller(BaseModel):
    name: str = "Open Digital Education"
    line1: str = "2 rue Paul Dautier"
    postal_code: str = "78140"
    city: str = "Vélizy-Villacoublay"
    siret: str = "75227998300027"
    vat_number: str = "FR35752279983"
    email: str = "facturation.one@opendigitaleducation.com"


class OrderIntakeSettings(CommonSettings):
    ops_port: int = own_ops_port(topics.ORDER_INTAKE)
    # Departments fed automatically from ONDE, and the académie (or area) each belongs to.
    feed_academies: dict[str, str] = Field(default_factory=lambda: dict(DEFAULT_ACADEMIES))
    seller: Seller = Seller()
    payment_days: int = 30
    invoice_timezone: str = "Europe/Paris"
