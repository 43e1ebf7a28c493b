import {
  A,
  Navigate,
  Route,
  Router,
  type RouteSectionProps,
  useLocation,
  useNavigate,
  useParams,
} from '@solidjs/router';
import { createQuery, Provider } from '@urql/solid';
import { createMemo, lazy, onCleanup, Show } from 'solid-js';
import { EmptyState, ErrorNotice, Loading } from './components/Notice.tsx';
import { graphql } from './graphql.ts';
import { parseBuildPath } from './lib/build-name.ts';
import { createSession } from './lib/create-session.ts';
import { createKilnClient } from './lib/kiln-client.ts';
import { KilnContext, useKiln } from './lib/kiln-context.ts';
import { BuildsPage } from './views/builds/BuildsPage.tsx';

const BuildPage = lazy(() => import('./views/builds/BuildPage.tsx'));
const SubmitPage = lazy(() => import('./views/builds/SubmitPage.tsx'));
const SignInPage = lazy(() => import('./views/session/SignInPage.tsx'));
const SignUpPage = lazy(() => import('./views/session/SignUpPage.tsx'));
const ResetPasswordPage = lazy(() => import('./views/session/ResetPasswordPage.tsx'));
const TokensPage = lazy(() => import('./views/tokens/TokensPage.tsx'));
const NamespacesPage = lazy(() => import('./views/namespaces/NamespacesPage.tsx'));
const NamespacePage = lazy(() => import('./views/namespaces/NamespacePage.tsx'));
const SecretsPage = lazy(() => import('./views/secrets/SecretsPanel.tsx'));
const RepositoryPage = lazy(() => import('./views/repositories/RepositoryPage.tsx'));
const RunnersPage = lazy(() => import('./views/runners/RunnersPage.tsx'));
const AccountPage = lazy(() => import('./views/account/AccountPage.tsx'));
const SchedulesPage = lazy(() => import('./views/schedules/SchedulesPage.tsx'));
const SchedulePage = lazy(() => import('./views/schedules/SchedulePage.tsx'));
const WebhooksPage = lazy(() => import('./views/webhooks/WebhooksPage.tsx'));
const WebhookPage = lazy(() => import('./views/webhooks/WebhookPage.tsx'));

const PUBLIC_PATHS = new Set(['/sign-in', '/sign-up', '/reset-password']);
/**
 * A build's page opens without signing in: the API serves builds of PUBLIC namespaces (and their
 * logs) to anonymous callers, and says "no such build" for the others.
 */
const ANONYMOUS_PATH = /^\/builds\/(?!new$)[^/]+$|^\/[^/]+\/.+\/builds\/\d+\/?$/;

/** Opens `/<owner>/<namespace path>/builds/<number>`: the namespace's build of that number. */
const BuildByNumberQuery = graphql(`
  query BuildByNumber($namespace: String!, $number: Int!) {
    namespace(path: $namespace) {
      id
      build(number: $number) {
        id
      }
    }
  }
`);

const ViewerQuery = graphql(`
  query Viewer {
    viewer {
      id
      username
      isAdmin
    }
  }
`);

const LogOut = graphql(`
  mutation LogOut {
    logOut
  }
`);

function Viewer() {
  const { session, client } = useKiln();
  const navigate = useNavigate();
  const [viewer] = createQuery({ query: ViewerQuery });
  return (
    <div class="viewer">
      <Show when={viewer.data?.viewer}>
        {(v) => (
          <A href="/account" class="muted" title="Your account">
            {v().username}
          </A>
        )}
      </Show>
      <button
        type="button"
        class="link-button"
        onClick={async () => {
          // Ends the cookie session too; a bearer token stays valid (it is only forgotten here).
          await client.urql.mutation(LogOut, {}).toPromise();
          session.signOut();
          navigate('/sign-in');
        }}
      >
        Sign out
      </button>
    </div>
  );
}

/** The frame of every page: the client for the current token, the header, and the sign-in gate. */
function Shell(props: RouteSectionProps) {
  const session = createSession();
  const location = useLocation();
  const navigate = useNavigate();
  const isPublic = () => PUBLIC_PATHS.has(location.pathname);
  const anonymousOk = () => isPublic() || ANONYMOUS_PATH.test(location.pathname);
  const client = createMemo(() => {
    const token = session.token();
    const c = createKilnClient({
      token: () => token,
      onUnauthenticated: () => {
        // Signed out already: a page anyone may see stays; the others ask for a sign-in.
        if (isPublic() || (!token && anonymousOk())) return;
        session.signOut();
        navigate(`/sign-in?next=${encodeURIComponent(location.pathname + location.search)}`, {
          replace: true,
        });
      },
    });
    onCleanup(() => c.dispose());
    return c;
  });

  return (
    <>
      <a class="skip-link" href="#main">
        Skip to content
      </a>
      <header class="topbar">
        <A href="/builds" class="brand" end>
          Kiln
        </A>
        <Show when={session.token()}>
          <nav aria-label="Main">
            <A href="/builds" end>
              Builds
            </A>
            <A href="/builds/new">New build</A>
            <A href="/namespaces">Namespaces</A>
            <A href="/schedules">Schedules</A>
            <A href="/webhooks">Webhooks</A>
            <A href="/variables">Variables</A>
            <A href="/tokens">Tokens</A>
            <A href="/runners">Runners</A>
          </nav>
        </Show>
        <Show
          when={session.token() ? client() : undefined}
          keyed
          fallback={
            <Show when={!isPublic()}>
              <div class="viewer">
                <A href={`/sign-in?next=${encodeURIComponent(location.pathname + location.search)}`}>
                  Sign in
                </A>
              </div>
            </Show>
          }
        >
          {(c) => (
            <KilnContext.Provider value={{ session, client: c }}>
              <Provider value={c.urql}>
                <Viewer />
              </Provider>
            </KilnContext.Provider>
          )}
        </Show>
      </header>
      <main id="main" tabindex="-1">
        <Show
          when={session.token() || anonymousOk()}
          fallback={
            <Navigate href={`/sign-in?next=${encodeURIComponent(location.pathname + location.search)}`} />
          }
        >
          <Show when={client()} keyed>
            {(c) => (
              <KilnContext.Provider value={{ session, client: c }}>
                <Provider value={c.urql}>{props.children}</Provider>
              </KilnContext.Provider>
            )}
          </Show>
        </Show>
      </main>
    </>
  );
}

/**
 * A build's page, made anew for each build: its log store, subscriptions and viewer state belong to
 * one build, so Rerun and Back/Forward (same route, another id) never mix two builds' logs.
 */
function BuildRoute() {
  const params = useParams<{ id: string }>();
  return (
    <Show when={params.id} keyed>
      {(id) => <BuildPage id={id} />}
    </Show>
  );
}

/**
 * `/<owner>/<namespace path>/builds/<number>`: resolved to the build's id, then the same page as
 * `/builds/<id>`. Any other path of two or more segments that no route claims is not found.
 */
function ReadableBuildRoute() {
  const location = useLocation();
  const target = createMemo(() => parseBuildPath(location.pathname));
  return (
    <Show when={target()} keyed fallback={<NotFound />}>
      {(t) => <ResolvedBuild namespace={t.namespace} number={t.number} />}
    </Show>
  );
}

function ResolvedBuild(props: { namespace: string; number: number }) {
  const [query, refetch] = createQuery({
    query: BuildByNumberQuery,
    variables: { namespace: props.namespace, number: props.number },
  });
  const id = () => query.data?.namespace?.build?.id;
  return (
    <>
      <Show when={query.error && !query.data}>
        <ErrorNotice error={query.error!} title="Could not load the build" retry={() => refetch()} />
      </Show>
      <Show when={!query.data && query.fetching}>
        <Loading label="Loading the build…" />
      </Show>
      <Show when={query.data && !id()}>
        <section class="page">
          <EmptyState title="No such build">
            <p>
              {props.namespace} has no build #{props.number}, or you may not see it.{' '}
              <A href="/builds">See all builds</A>.
            </p>
          </EmptyState>
        </section>
      </Show>
      <Show when={id()} keyed>
        {(buildId) => <BuildPage id={buildId} />}
      </Show>
    </>
  );
}

function NotFound() {
  return (
    <section class="page">
      <h1>Not found</h1>
      <p>
        Nothing lives at this address. <A href="/builds">See the builds</A>.
      </p>
    </section>
  );
}

export function App() {
  return (
    <Router root={Shell}>
      <Route path="/" component={() => <Navigate href="/builds" />} />
      <Route path="/builds" component={BuildsPage} />
      <Route path="/builds/new" component={SubmitPage} />
      <Route path="/builds/:id" component={BuildRoute} />
      <Route path="/sign-in" component={SignInPage} />
      <Route path="/reset-password" component={ResetPasswordPage} />
      <Route path="/sign-up" component={SignUpPage} />
      <Route path="/tokens" component={TokensPage} />
      <Route path="/namespaces" component={NamespacesPage} />
      <Route path="/namespaces/:owner/*path" component={NamespacePage} />
      <Route path="/repositories/:id" component={RepositoryPage} />
      <Route path="/schedules" component={SchedulesPage} />
      <Route path="/schedules/:id" component={SchedulePage} />
      <Route path="/webhooks" component={WebhooksPage} />
      <Route path="/webhooks/:id" component={WebhookPage} />
      <Route path="/variables" component={SecretsPage} />
      <Route path="/runners" component={RunnersPage} />
      <Route path="/account" component={AccountPage} />
      <Route path="/:owner/*rest" component={ReadableBuildRoute} />
      <Route path="*" component={NotFound} />
    </Router>
  );
}
