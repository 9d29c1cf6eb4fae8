import { createClient, type SupabaseClient } from '@supabase/supabase-js'
import type { Database } from './database.types'

const supabaseUrl = import.meta.env.VITE_SUPABASE_URL as string
const supabaseAnonKey = import.meta.env.VITE_SUPABASE_ANON_KEY as string

export const supabase: SupabaseClient<Database> = createClient<Database>(supabaseUrl, supabaseAnonKey, {
  auth: { persistSession: true },
})

export type Todo = Database['public']['Tables']['todos']['Row']

export async function listTodos(userId: string): Promise<Todo[]> {
  const { data, error } = await supabase
    .from('todos')
    .select('id, title, done, created_at')
    .eq('user_id', userId)
    .order('created_at', { ascending: false })
    .limit(100)
  if (error) throw error
  return data ?? []
}

export async function addTodo(userId: string, title: string) {
  const { data, error } = await supabase.from('todos').insert({ user_id: userId, title }).select().single()
  if (error) throw error
  return data
}

export async function toggleTodo(id: number, done: boolean) {
  return supabase.from('todos').update({ done }).eq('id', id)
}

export async function removeTodo(id: number) {
  await supabase.from('todos').delete().eq('id', id)
}

export async function saveProfile(profile: { id: string; username: string }) {
  await supabase.from('profiles').upsert(profile, { onConflict: 'id' })
}

export async function readTable(table: string) {
  return supabase.from(table).select('*')
}

export async function monthlyStats(month: string) {
  const { data } = await supabase.rpc('monthly_stats', { month })
  return data
}

export async function uploadAvatar(userId: string, file: File) {
  const path = `${userId}/${file.name}`
  const { error } = await supabase.storage.from('avatars').upload(path, file, { upsert: true })
  if (error) throw error
  const { data } = supabase.storage.from('avatars').getPublicUrl(path)
  return data.publicUrl
}

export async function removeAvatar(path: string) {
  await supabase.storage.from('avatars').remove([path])
}

export async function sendWelcome(email: string) {
  return supabase.functions.invoke('send-welcome', { body: { email } })
}

export async function signIn(email: string, password: string) {
  return supabase.auth.signInWithPassword({ email, password })
}

export async function signOut() {
  await supabase.auth.signOut()
}

export async function currentUser() {
  const { data } = await supabase.auth.getUser()
  return data.user
}

export function watchMessages(roomId: string, onInsert: (row: unknown) => void) {
  const channel = supabase
    .channel(`room:${roomId}`)
  channel
    .on('postgres_changes', { event: 'INSERT', schema: 'public', table: 'messages', filter: `room_id=eq.${roomId}` },
      (payload) => onInsert(payload.new))
    .subscribe()
  return () => supabase.removeChannel(channel)
}
