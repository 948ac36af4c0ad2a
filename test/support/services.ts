import { createHealthService, type HealthDeps, type HealthService } from "../../src/services/health.ts";
import { createLogsService, type LogsDeps, type LogsService } from "../../src/services/logs.ts";
import { createPrometheusService } from "../../src/services/prometheus.ts";
import { createSshService } from "../../src/services/ssh.ts";

/**
 * The health service with the SSH and Prometheus services built from the same environments, as createContext builds
 * them.
 */
export function healthService(deps: Omit<HealthDeps, "ssh" | "prometheus">): HealthService {
	return createHealthService({
		...deps,
		ssh: createSshService(deps),
		prometheus: createPrometheusService(deps.environments),
	});
}

/** The logs service with the SSH service built from the same environments, as createContext builds it. */
export function logsService(deps: Omit<LogsDeps, "ssh">): LogsService {
	return createLogsService({ ...deps, ssh: createSshService(deps) });
}
