"""The simulator finds the instance a message goes to by phone in an index kept by scan, logout and delete."""

from __future__ import annotations

import asyncio

from mirage.integrations.evolution_sim.config import SimConfig
from mirage.integrations.evolution_sim.world import SimWorld


def test_instance_by_phone_follows_scans_logouts_and_deletes() -> None:
    async def main() -> None:
        world = SimWorld(SimConfig(time_factor=0.001))
        a, b = (
            world.create(
                n, token=None, integration="WHATSAPP-BAILEYS", settings={}, webhook=None, number=None, qrcode=True
            )
            for n in ("a", "b")
        )
        assert world.instance_by_phone("+5511912345678") is None
        world.scan(a, "+5511912345678")
        world.scan(b, "+5511912345678")  # one phone in two instances: the first created answers
        assert world.instance_by_phone("5511912345678@s.whatsapp.net") is a
        world.logout(a)
        assert world.instance_by_phone("+5511912345678") is b
        world.restart(b)  # reconnecting: not open for a moment, then open again as the same phone
        assert world.instance_by_phone("+5511912345678") is None
        await asyncio.sleep(0.05)
        assert world.instance_by_phone("+5511912345678") is b
        world.delete(b)
        assert world.instance_by_phone("+5511912345678") is None and world._by_owner == {}
        await world.stop()

    asyncio.run(main())
