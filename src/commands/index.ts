import { ALERT_BUTTONS } from "../alerts/buttons.ts";
import type { AnyComponentHandler, Command } from "../discord/handler.ts";
import { alerts } from "./alerts.ts";
import { audit, auditCsv, auditPage } from "./audit.ts";
import { health, healthRerun } from "./health.ts";
import { logs, logsCorrelation, logsDownload, logsNewer, logsOlder } from "./logs.ts";
import { pool, poolCancel, poolConfirm, poolRefresh, poolTerminate } from "./pool.ts";
import { maintenance, SILENCE_COMPONENTS, silence } from "./silence.ts";
import { whodeleted } from "./whodeleted.ts";

/** The one command list: the router and deploy-commands.ts both read it. */
export const COMMANDS: readonly Command[] = [health, pool, logs, whodeleted, audit, alerts, silence, maintenance];

/** Every button, select and modal handler, found by customId `area:action`. */
export const COMPONENTS: readonly AnyComponentHandler[] = [
	healthRerun,
	poolRefresh,
	poolTerminate,
	poolConfirm,
	poolCancel,
	auditPage,
	auditCsv,
	logsOlder,
	logsNewer,
	logsDownload,
	logsCorrelation,
	...ALERT_BUTTONS,
	...SILENCE_COMPONENTS,
];
