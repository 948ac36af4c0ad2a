/** Discord's documented limits (docs/PROTOCOLS.md §5.2, §5.5), enforced by the double like Discord: 400, code 50035. */

interface Problem {
	readonly path: string;
	readonly message: string;
}

type Json = Record<string, unknown>;
const str = (v: unknown) => (typeof v === "string" ? v : "");
const arr = (v: unknown): Json[] => (Array.isArray(v) ? (v as Json[]) : []);

/** Problems with a message body (content, embeds, components); empty when valid. */
export function messageProblems(body: Json): Problem[] {
	const problems: Problem[] = [];
	const check = (ok: boolean, path: string, message: string) => {
		if (!ok) problems.push({ path, message });
	};
	check(str(body.content).length <= 2_000, "content", "Must be 2000 or fewer in length.");
	const embeds = arr(body.embeds);
	check(embeds.length <= 10, "embeds", "Must be 10 or fewer in length.");
	let total = 0;
	embeds.forEach((embed, i) => {
		const at = `embeds.${i}`;
		const title = str(embed.title);
		const description = str(embed.description);
		const footer = str((embed.footer as Json | undefined)?.text);
		const author = str((embed.author as Json | undefined)?.name);
		check(title.length <= 256, `${at}.title`, "Must be 256 or fewer in length.");
		check(description.length <= 4_096, `${at}.description`, "Must be 4096 or fewer in length.");
		check(footer.length <= 2_048, `${at}.footer.text`, "Must be 2048 or fewer in length.");
		check(author.length <= 256, `${at}.author.name`, "Must be 256 or fewer in length.");
		const fields = arr(embed.fields);
		check(fields.length <= 25, `${at}.fields`, "Must be 25 or fewer in length.");
		total += title.length + description.length + footer.length + author.length;
		fields.forEach((field, j) => {
			const name = str(field.name);
			const value = str(field.value);
			check(name.trim().length >= 1 && name.length <= 256, `${at}.fields.${j}.name`, "Must be between 1 and 256 in length.");
			check(value.trim().length >= 1 && value.length <= 1_024, `${at}.fields.${j}.value`, "Must be between 1 and 1024 in length.");
			total += name.length + value.length;
		});
	});
	check(total <= 6_000, "embeds", "Embed size exceeds maximum size of 6000");
	problems.push(...componentProblems(arr(body.components)));
	return problems;
}

function componentProblems(rows: Json[]): Problem[] {
	const problems: Problem[] = [];
	const ids = new Set<string>();
	if (rows.length > 5) problems.push({ path: "components", message: "Must be 5 or fewer in length." });
	rows.forEach((row, i) => {
		const children = arr(row.components);
		const selects = children.filter((c) => c.type !== 2);
		if (children.length > 5 || (selects.length > 0 && children.length > 1)) problems.push({ path: `components.${i}.components`, message: "A row holds up to 5 buttons or 1 select." });
		children.forEach((c, j) => {
			const at = `components.${i}.components.${j}`;
			const id = c.custom_id;
			if (id !== undefined) {
				if (str(id).length < 1 || str(id).length > 100) problems.push({ path: `${at}.custom_id`, message: "Must be between 1 and 100 in length." });
				if (ids.has(str(id))) problems.push({ path: `${at}.custom_id`, message: "Component custom id cannot be duplicated" });
				ids.add(str(id));
			}
			if (str(c.label).length > 80) problems.push({ path: `${at}.label`, message: "Must be 80 or fewer in length." });
			if (arr(c.options).length > 25) problems.push({ path: `${at}.options`, message: "Must be 25 or fewer in length." });
			if (str(c.placeholder).length > 150) problems.push({ path: `${at}.placeholder`, message: "Must be 150 or fewer in length." });
		});
	});
	return problems;
}

/** Problems with an interaction callback body by type (autocomplete choices, modal shape). */
export function callbackProblems(type: number, data: Json | undefined): Problem[] {
	if (type === 8) {
		const choices = arr(data?.choices);
		const problems: Problem[] = [];
		if (choices.length > 25) problems.push({ path: "data.choices", message: "Must be 25 or fewer in length." });
		choices.forEach((c, i) => {
			if (str(c.name).length < 1 || str(c.name).length > 100) problems.push({ path: `data.choices.${i}.name`, message: "Must be between 1 and 100 in length." });
		});
		return problems;
	}
	if (type === 9) {
		const problems: Problem[] = [];
		const title = str(data?.title);
		if (title.length < 1 || title.length > 45) problems.push({ path: "data.title", message: "Must be between 1 and 45 in length." });
		const n = arr(data?.components).length;
		if (n < 1 || n > 5) problems.push({ path: "data.components", message: "Must be between 1 and 5 in length." });
		return problems;
	}
	if (type === 4 || type === 7) return messageProblems(data ?? {});
	return [];
}

const COMMAND_NAME = /^[-_'\p{L}\p{N}\p{sc=Deva}\p{sc=Thai}]{1,32}$/u;

/** Problems with one application command registration. */
export function commandProblems(command: Json, index: number): Problem[] {
	const problems: Problem[] = [];
	if (!COMMAND_NAME.test(str(command.name))) problems.push({ path: `${index}.name`, message: "Invalid command name" });
	const description = str(command.description);
	if ((command.type ?? 1) === 1 && (description.length < 1 || description.length > 100)) problems.push({ path: `${index}.description`, message: "Must be between 1 and 100 in length." });
	if (arr(command.options).length > 25) problems.push({ path: `${index}.options`, message: "Must be 25 or fewer in length." });
	return problems;
}

/** The 400 body Discord sends for an invalid form. */
export function invalidFormBody(problems: readonly Problem[]): Json {
	const errors: Json = {};
	for (const p of problems) errors[p.path] = { _errors: [{ code: "BASE_TYPE_BAD_LENGTH", message: p.message }] };
	return { code: 50035, message: "Invalid Form Body", errors };
}
