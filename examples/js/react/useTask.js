// A React hook: `useTask(id, { client })` is the task, live: its record with the latest state,
// `null` until the first read, and `error` if the server refused.
//
// Use it in a component (the client made once, with the token your app minted for this user):
//     import { Offstage } from "https://offstage.example/offstage.js";
//     const client = new Offstage("https://offstage.example", { token });
//     function Progress({ id }) {
//       const { task, error } = useTask(id, { client });
//       if (error) return error.message;
//       if (!task) return "…";
//       return h("progress", { max: task.state.total, value: task.state.done });
//     }
// No JSX is needed (`h` is React.createElement); copy this file into your app.
import { useEffect, useState } from "react";

export function useTask(id, { client }) {
  const [live, setLive] = useState({ task: null, error: null });
  useEffect(() => {
    if (!id) return undefined;
    const watch = client.watch(id, {
      snapshot: (task) => setLive({ task, error: null }),
      state: (state) => setLive((now) => (now.task ? { ...now, task: { ...now.task, state } } : now)),
      finished: (task) => setLive({ task, error: null }),
      error: (error) => setLive((now) => ({ ...now, error })),
    });
    return () => watch.close();
  }, [id, client]);
  return live;
}
