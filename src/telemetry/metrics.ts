import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from 'prom-client';

/** Prometheus metrics of one broker process (served at /metrics). */
export class Metrics {
  readonly registry = new Registry();
  readonly requests = new Counter({
    name: 'custody_requests_total',
    help: 'Operations served, by operation, door and outcome',
    labelNames: ['operation', 'door', 'outcome'] as const,
    registers: [this.registry],
  });
  readonly latency = new Histogram({
    name: 'custody_request_duration_seconds',
    help: 'Operation latency, by operation',
    labelNames: ['operation'] as const,
    buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
    registers: [this.registry],
  });
  readonly sealed = new Gauge({
    name: 'custody_sealed',
    help: '1 when the broker is sealed',
    registers: [this.registry],
  });
  readonly auditSinkFailures = new Counter({
    name: 'custody_audit_sink_failures_total',
    help: 'Audit entries a sink failed to write, by sink',
    labelNames: ['sink'] as const,
    registers: [this.registry],
  });

  readonly leaseRevocations = new Counter({
    name: 'custody_lease_revocations_total',
    help: 'Lease revocation attempts, by outcome (revoked, failed, forced)',
    labelNames: ['outcome'] as const,
    registers: [this.registry],
  });
  readonly leasesRevokeFailed = new Gauge({
    name: 'custody_leases_revoke_failed',
    help: 'Leases whose revocation failed and is being retried',
    registers: [this.registry],
  });

  constructor() {
    collectDefaultMetrics({ register: this.registry, prefix: 'custody_process_' });
  }
}
