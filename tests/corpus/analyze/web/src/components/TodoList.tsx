import { useEffect, useState } from 'react'
import { supabase } from '../lib/supabaseClient'

type Todo = { id: number; title: string; done: boolean }

export function TodoList({ userId }: { userId: string }) {
  const [todos, setTodos] = useState<Todo[]>([])
  const [title, setTitle] = useState('')

  useEffect(() => {
    let active = true
    supabase.from('todos').select('*').eq('user_id', userId).then(({ data }) => {
      if (active && data) setTodos(data as Todo[])
    })
    const sub = supabase.auth.onAuthStateChange((_event, session) => {
      if (!session) setTodos([])
    })
    const channel = supabase.channel('todos-changes').on(
      'postgres_changes',
      { event: '*', schema: 'public', table: 'todos' },
      () => refresh(),
    ).subscribe()
    return () => {
      active = false
      sub.data.subscription.unsubscribe()
      supabase.removeChannel(channel)
    }
  }, [userId])

  async function refresh() {
    const { data } = await supabase.from('todos').select('*').eq('user_id', userId)
    setTodos((data ?? []) as Todo[])
  }

  async function add() {
    if (!title.trim()) return
    await supabase.from('todos').insert({ title, user_id: userId })
    setTitle('')
    await refresh()
  }

  return (
    <div className="todo-list">
      <input value={title} onChange={(e) => setTitle(e.target.value)} />
      <button onClick={add}>Add</button>
      <ul>
        {todos.map((t) => (
          <li key={t.id} onClick={() => supabase.from('todos').update({ done: !t.done }).eq('id', t.id)}>
            {t.title}
          </li>
        ))}
      </ul>
    </div>
  )
}
