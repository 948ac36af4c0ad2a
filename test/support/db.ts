import pg from "pg";

/** Client connections held open for a test; `await using` closes them. */
export interface HeldConnections extends AsyncDisposable {
	readonly clients: readonly pg.Client[];
	close(): Promise<void>;
}

/** Opens `n` connections that stay idle (optionally inside an open transaction) until disposed. */
export async function openConnections(
	url: string,
	n: number,
	options: { inTransaction?: boolean; applicationName?: string } = {},
): Promise<HeldConnections> {
	const clients = await Promise.all(
		Array.from({ length: n }, async () => {
			const client = new pg.Client({
				connectionString: url,
				...(options.applicationName ? { application_name: options.applicationName } : {}),
			});
			client.on("error", () => undefined); // terminated by a test on purpose
			await client.connect();
			if (options.inTransaction) await client.query("BEGIN; SELECT 1");
			return client;
		}),
	);
	const close = async () => {
		await Promise.allSettled(clients.map((c) => c.end()));
	};
	return { clients, close, [Symbol.asyncDispose]: close };
}
