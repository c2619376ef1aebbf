// Sends one event to Tempest with the official Inngest SDK and prints the ids it returns.
// Usage: node send.mjs <baseUrl> <eventName> <dataJSON>
import { Inngest } from "inngest";

const [baseUrl, name, data] = process.argv.slice(2);
const inngest = new Inngest({ id: "tempest-e2e", baseUrl, isDev: true });
const { ids } = await inngest.send({ name, data: JSON.parse(data) });
console.log(JSON.stringify({ ids }));
