"""gardenctl: the ops console for the GardenOS stack (Patroni/etcd/HAProxy PostgreSQL, K3s, Hetzner Cloud)."""

__version__ = "0.1.0"
