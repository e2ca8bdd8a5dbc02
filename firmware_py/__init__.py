"""Board layer: service watchdog (systemd notify), GPIO backends, LEDs, power keys."""
