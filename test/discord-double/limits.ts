/**
 * Discord's documented limits (docs/PROTOCOLS.md §5.2, §5.5), enforced by the double like Discord: 400, code 50035.
 */

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
			check(
				name.trim().length >= 1 && name.length <= 256,
				`${at}.fields.${j}.name`,
				"Must be between 1 and 256 in length.",
			);
			check(
				value.trim().length >= 1 && value.length <= 1_024,
				`${at}.fields.${j}.value`,
				"Must be between 1 and 1024 in length.",
			);
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
		if (children.length > 5 || (selects.length > 0 && children.length > 1))
			problems.push({ path: `components.${i}.components`, message: "A row holds up to 5 buttons or 1 select." });
		children.forEach((c, j) => {
			const at = `components.${i}.components.${j}`;
			const id = c.custom_id;
			if (id !== undefined) {
				if (str(id).length < 1 || str(id).length > 100)
					problems.push({ path: `${at}.custom_id`, message: "Must be between 1 and 100 in length." });
				if (ids.has(str(id)))
					problems.push({ path: `${at}.custom_id`, message: "Component custom id cannot be duplicated" });
				ids.add(str(id));
			}
			if (str(c.label).length > 80) problems.push({ path: `${at}.label`, message: "Must be 80 or fewer in length." });
			if (arr(c.options).length > 25)
				problems.push({ path: `${at}.options`, message: "Must be 25 or fewer in length." });
			if (str(c.placeholder).length > 150)
				problems.push({ path: `${at}.placeholder`, message: "Must be 150 or fewer in length." });
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
			if (str(c.name).length < 1 || str(c.name).length > 100)
				problems.push({ path: `data.choices.${i}.name`, message: "Must be between 1 and 100 in length." });
		});
		return problems;
	}
	if (type === 9) {
		const problems: Problem[] = [];
		const title = str(data?.title);
		if (title.length < 1 || title.length > 45)
			problems.push({ path: "data.title", message: "Must be between 1 and 45 in length." });
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
	if ((command.type ?? 1) === 1 && (description.length < 1 || description.length > 100))
		problems.push({ path: `${index}.description`, message: "Must be between 1 and 100 in length." });
	if (arr(command.options).length > 25)
		problems.push({ path: `${index}.options`, message: "Must be 25 or fewer in length." });
	return problems;
}

/** The 400 body Discord sends for an invalid form. */
export function invalidFormBody(problems: readonly Problem[]): Json {
	const errors: Json = {};
	for (const p of problems) errors[p.path] = { _errors: [{ code: "BASE_TYPE_BAD_LENGTH", message: p.message }] };
	return { code: 50035, message: "Invalid Form Body", errors };
}

/** A documented limit the OpenAPI spec does not encode, broken at `pointer` (a JSON pointer into the body). */
export interface LimitProblem {
	readonly pointer: string;
	readonly rule: string;
	readonly message: string;
}

const IS_COMPONENTS_V2 = 1 << 15;
const BUTTON_LINK = 5;
const BUTTON_PREMIUM = 6;

/**
 * The limits Discord documents and its OpenAPI spec leaves out (../shared/discord-api-spec/README.md):
 * 2,000 characters of content, 6,000 over all embeds, at most 5 action rows, unique custom_ids in a
 * message, no empty new message, and the fields each button style needs. `kind` says what the body is:
 * a new message, an edit, or an interaction callback (whose `data` is the message for types 4 and 7).
 */
export function limitProblems(
	body: Json,
	options: { kind: "create" | "edit" | "callback"; files: number },
): LimitProblem[] {
	if (options.kind === "callback") {
		const type = Number(body.type);
		const data = (body.data ?? {}) as Json;
		if (type === 4) return messageLimits(data, "/data", { create: true, files: options.files });
		if (type === 7) return messageLimits(data, "/data", { create: false, files: options.files });
		return [];
	}
	return messageLimits(body, "", { create: options.kind === "create", files: options.files });
}

function messageLimits(body: Json, at: string, options: { create: boolean; files: number }): LimitProblem[] {
	const problems: LimitProblem[] = [];
	const problem = (pointer: string, rule: string, message: string) =>
		problems.push({ pointer: `${at}${pointer}`, rule, message });
	const content = str(body.content);
	if (content.length > 2_000)
		problem("/content", "content-length", `content is ${content.length} characters; Discord takes at most 2,000`);
	const embeds = arr(body.embeds);
	const total = embeds.reduce((sum, e) => sum + embedCharacters(e), 0);
	if (total > 6_000)
		problem("/embeds", "embeds-total", `the embeds hold ${total} characters together; Discord takes at most 6,000`);
	const components = arr(body.components);
	const v2 = (Number(body.flags ?? 0) & IS_COMPONENTS_V2) !== 0;
	if (!v2 && components.length > 5)
		problem("/components", "action-rows", `${components.length} action rows; Discord takes at most 5`);
	const ids = new Map<string, string>();
	walkComponents(components, "/components", (c, pointer) => {
		if (typeof c.custom_id === "string") {
			const first = ids.get(c.custom_id);
			if (first)
				problem(
					`${pointer}/custom_id`,
					"unique-custom-id",
					`custom_id "${c.custom_id}" is already used at ${at}${first}`,
				);
			else ids.set(c.custom_id, pointer);
		}
		if (c.type === 2)
			for (const [where, message] of buttonProblems(c)) problem(`${pointer}${where}`, "button-style", message);
	});
	if (options.create) {
		const empty =
			!content &&
			embeds.length === 0 &&
			components.length === 0 &&
			arr(body.sticker_ids).length === 0 &&
			!body.poll &&
			options.files === 0;
		if (empty)
			problem("", "empty-message", "a new message needs content, embeds, components, stickers, a poll or a file");
	}
	return problems;
}

/** What Discord counts towards an embed's 6,000 characters. */
function embedCharacters(embed: Json): number {
	const text = (v: unknown) => str(v).length;
	return (
		text(embed.title) +
		text(embed.description) +
		text((embed.footer as Json | undefined)?.text) +
		text((embed.author as Json | undefined)?.name) +
		arr(embed.fields).reduce((sum, f) => sum + text(f.name) + text(f.value), 0)
	);
}

function walkComponents(components: Json[], at: string, visit: (c: Json, pointer: string) => void): void {
	components.forEach((c, i) => {
		visit(c, `${at}/${i}`);
		walkComponents(arr(c.components), `${at}/${i}/components`, visit);
		if (c.accessory && typeof c.accessory === "object") visit(c.accessory as Json, `${at}/${i}/accessory`);
	});
}

/**
 * Discord's button rules: link buttons carry a url and no custom_id, premium ones only a sku_id, the others a custom_id
 * and no url; all but premium show a label or an emoji.
 */
function buttonProblems(button: Json): [string, string][] {
	const style = Number(button.style);
	const has = (k: string) => button[k] !== undefined && button[k] !== null;
	const problems: [string, string][] = [];
	if (style === BUTTON_LINK) {
		if (!has("url")) problems.push(["/url", "a link button (style 5) needs a url"]);
		if (has("custom_id")) problems.push(["/custom_id", "a link button (style 5) cannot have a custom_id"]);
	} else if (style === BUTTON_PREMIUM) {
		if (!has("sku_id")) problems.push(["/sku_id", "a premium button (style 6) needs a sku_id"]);
		for (const k of ["custom_id", "url", "label", "emoji"])
			if (has(k)) problems.push([`/${k}`, `a premium button (style 6) cannot have a ${k}`]);
	} else {
		if (!has("custom_id")) problems.push(["/custom_id", `a button of style ${style} needs a custom_id`]);
		if (has("url")) problems.push(["/url", `only link buttons (style 5) have a url; this one is style ${style}`]);
	}
	if (style !== BUTTON_PREMIUM && !str(button.label) && !has("emoji"))
		problems.push(["/label", "a button needs a label or an emoji"]);
	return problems;
}
