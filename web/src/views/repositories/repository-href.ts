/** A repository's address in the console. */
export const repositoryHref = (id: string) => `/repositories/${encodeURIComponent(id)}`;
