"""Operations: the health checks a load balancer asks and the metrics Prometheus scrapes."""
